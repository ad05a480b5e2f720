"""Tests of growkit/papers/."""
