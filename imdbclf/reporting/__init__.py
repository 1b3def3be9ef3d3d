"""The report: the models compared (`compare`), in words and tables (`markdown`) and in figures (`figures`)."""
