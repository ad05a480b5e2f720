"""Regenerating the papers' figures and tables: the notebooks run by papermill (figures), their
profiles, tables and captions (report), and the method-independent helpers notebooks call (study)."""
