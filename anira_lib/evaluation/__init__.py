"""Evaluation: accuracy and depth per knob, allocation dumps and their reader, checkpoint evaluation, sufficient depth, decode speed."""
