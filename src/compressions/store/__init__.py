"""The ground floor of experiments: run folders (files written atomically, status, logs), their locks,
results tables, and what each kind of saved folder holds. Imports no method package: a trainer or method
takes its file names from here."""
