"""The benchmark (``python -m bench``) and the load helpers the reliability tests share."""
