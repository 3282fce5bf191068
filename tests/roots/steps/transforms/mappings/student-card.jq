# A student as a card: the name, and the year group as a label.
{
  name: .name,
  label: ("Åk " + (.year | tostring))
}
