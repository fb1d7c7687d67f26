"""Rankers: the current model in this process (`local`), or a model server over HTTP (`http`)."""
