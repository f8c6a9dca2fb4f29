"""Commands that look inside a model or a run: attention pictures and curves (show, plots),
the shape trace, low-rank analysis and the speed benchmark."""
