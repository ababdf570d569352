"""The Streamlit leaderboard (app.py) and the table logic it uses (data.py)."""
