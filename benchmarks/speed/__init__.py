"""Speed benchmarks: each writes OUT/results.json and OUT/results.md to its --out folder."""
