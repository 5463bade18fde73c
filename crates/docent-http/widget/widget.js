// Placeholder loader: the real one is helper wfront's (crates/docent-http/widget/widget.js).
