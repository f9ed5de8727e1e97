"""Long-running property-based fuzz targets for smtpproto (hypothesis), runnable on their own.

Each module is one target: ``python -m fuzz.<target> --seconds N`` or
``python fuzz/run.py --target <target> --seconds N``. ``fuzz/README.md`` lists the targets,
what each one checks, and the figures measured.
"""
