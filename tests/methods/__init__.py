"""Tests of growkit/methods/."""
