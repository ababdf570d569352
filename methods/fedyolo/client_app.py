"""The Flower ClientApp: a client trains the module it is sent on its own partition and sends it back.

Deployable as is: a real client would run the same app with its own data in ``Setup``; the only
simulation-specific input is ``node_config["partition-id"]`` (which Dirichlet partition is this node's).

Messages (``message.content``):
- ``query``: the server asks which partition the node holds (for seeded client sampling);
- ``train``: ``arrays`` (the global module) and ``config`` (arm, task, epochs, seed, evaluate) in;
  the trained module and ``metrics`` (num-examples, train-loss) out. With ``evaluate`` set
  (local-only training) the client scores its own model and sends metrics only, no arrays.
"""

from __future__ import annotations

import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from methods.fedyolo.local import predict, train_epochs
from methods.fedyolo.modules import get_state, set_state, set_trainable
from methods.fedyolo.setup import Setup


def make_client_app(setup: Setup) -> ClientApp:
    app = ClientApp()

    @app.query()
    def whoami(message: Message, context: Context) -> Message:
        partition = int(context.node_config["partition-id"])
        return Message(RecordDict({"config": ConfigRecord({"partition-id": partition})}), reply_to=message)

    @app.train()
    def train(message: Message, context: Context) -> Message:
        from benchmarks.federated_vision import score

        torch.set_num_threads(setup.threads)
        config = message.content["config"]
        arm, task_name = str(config["arm"]), str(config["task"])
        partition = int(context.node_config["partition-id"])
        model, names = setup.cached_model(arm)
        set_state(model, message.content["arrays"].to_torch_state_dict())
        task = setup.data.task(task_name)
        x, y = task.client_data(partition)
        device = torch.device(setup.device)
        params = set_trainable(model, names[task_name])
        generator = torch.Generator().manual_seed(int(config["seed"]))
        loss = train_epochs(model, task_name, x, y, params, int(config["epochs"]), setup.batch_size,
                            float(config["lr"]), float(config["weight-decay"]), generator, device, setup.dtype)
        metrics = {"num-examples": len(y), "train-loss": loss}
        if bool(config["evaluate"]):
            preds = predict(model, task_name, task.x_test, device, setup.eval_batch_size, setup.dtype)
            metrics.update(score(preds, task.y_test, task.num_classes,
                                 task.client_label_dist[partition:partition + 1]))
            arrays = ArrayRecord()
        else:
            state = get_state(model, names[task_name])
            arrays = ArrayRecord(torch_state_dict={k: v.cpu() for k, v in state.items()})
        return Message(RecordDict({"arrays": arrays, "metrics": MetricRecord(metrics)}), reply_to=message)

    return app
