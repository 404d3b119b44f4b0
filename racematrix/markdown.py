"""One Markdown table helper: every table in the tables, the report and the
bisect files is built here, and a cell's ``|`` is escaped one way."""


def cell(value):
    """A value as one table cell: ``|`` escaped, line breaks as spaces,
    None a dash."""
    if value is None:
        return "–"
    return str(value).replace("|", "\\|").replace("\n", " ")


def table(columns, rows):
    """The lines of a GitHub Markdown table: a header of ``columns`` and one
    line per row (a sequence of values, each passed through ``cell``)."""
    lines = ["| " + " | ".join(columns) + " |",
             "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(cell(value) for value in row) + " |"
              for row in rows]
    return lines
