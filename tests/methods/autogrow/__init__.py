"""Tests of growkit/methods/autogrow/."""
