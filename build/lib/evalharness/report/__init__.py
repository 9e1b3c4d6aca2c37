"""report.html and report.md of a run dir (build.py; `evalharness report RUN_DIR`).

The HTML is self-contained (plots and images embedded as data URIs): summary table with
Wilson CIs, heatmaps of accuracy over pairs of factors, main-effect bars with CIs, the
Shapley waterfall between A (the model card's reference) and B, a gallery of images whose
prediction flips between A and B (both preprocessed inputs side by side), and provenance.
report.md holds the same tables with the figures as PNG files in report_assets/.
"""
