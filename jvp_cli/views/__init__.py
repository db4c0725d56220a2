"""The views of a Report, one module each (httpie's `output/` is the model).

Each is a pure function of the Report (or of a --points summary): `rich` for the terminal,
`json` for `--json`; `common` holds what they share (number formatting, values beyond float64).
"""
