# One report of a run → its CSV text, for the spreadsheet the case officers open: UTF-8
# with a byte-order mark (so Excel reads å, ä, ö), `;` between cells, CRLF after each
# line, every cell quoted ("" inside). A cell that begins with =, +, -, @, a tab or a
# carriage return gets a leading ' so that no spreadsheet runs it as a formula. The last
# column is the case's link into OeP (a CSV cell cannot be a link). With `limit` (the
# e-mail's copy), only the first `limit` rows.
def cell: tostring
  | (if test("^[=+\\-@\t\r]") then "'" + . else . end)
  | "\"" + gsub("\""; "\"\"") + "\"";
def line: map(cell) | join(";") + "\r\n";

"\ufeff"
+ (.columns + ["Länk till ärendet"] | line)
+ ([.rows[: (.limit // (.rows | length))][] | .cells + [.link] | line] | join(""))
