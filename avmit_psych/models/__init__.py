"""DNN baselines on AVMIT embeddings: the squeeze-unit recognition RNNs and the SAVC models,
training, hyperparameter search, evaluation and predictions.

Built by the DNN-baselines issue.
"""
