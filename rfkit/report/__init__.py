"""Reports: files, figures, GraphViz and mkdocs sites built from RF graphs and ERF results."""
