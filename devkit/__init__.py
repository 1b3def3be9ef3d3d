"""What the tests, the benchmarks and the docs' screenshot scripts share, and the package never imports:
the repository's path, tiny params and data (`tiny_imdb`, `tiny_tables`), tiny TF Hub models
(`tiny_hub`), throwaway projects and commands run as a README reader would (`helpers`)."""
