"""Pretraining Gap Study: how much ImageNet pretraining is worth as a target dataset grows."""
