"""Training-time code: builds what ``models/`` ships. Needs the ``train`` extra (scikit-learn, xgboost)."""
