"""Offline ARC inference bundle: AIRV (augment, infer, reverse, vote) over vLLM."""
