"""Tests of growkit/methods/learn_to_grow/."""
