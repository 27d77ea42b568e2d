"""The reproduction study.

:mod:`aprnb.study.reproduce` runs the protocol (selection on validation, final
training, test metrics, robustness; ``python -m aprnb reproduce``) and
:mod:`aprnb.study.report` writes its markdown tables and figures
(:func:`aprnb.study.report.render` redraws them from a ``results.json``).
"""
