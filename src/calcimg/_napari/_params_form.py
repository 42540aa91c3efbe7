"""A magicgui form of :class:`calcimg.Params`: one field per parameter, its default, its unit and the tooltip
taken from Params' own docstring (so the GUI documents what the docs do)."""

from __future__ import annotations

import re
from dataclasses import fields
from typing import Any

from calcimg.model import REGISTRATION_MODELS, Params

#: Parameters not shown (bookkeeping).
_HIDDEN = ("schema_version",)
#: Step of the spin boxes of float parameters (others: a tenth of the default, at least 0.01).
_STEPS = {"noise_quantile": 0.01, "edge_fraction": 0.01, "min_tissue_fraction": 0.01, "change_band": 0.05}


def params_docs() -> dict[str, str]:
    """One-paragraph description of every Params attribute, from the class docstring's ``Attributes`` section.

    Entries naming several attributes (``min_area_mm2, max_area_mm2 : float``) give each the same text.

    Examples
    --------
    >>> docs = params_docs()
    >>> docs["seed_k"].startswith("A lesion must rise")
    True
    """
    doc = Params.__doc__ or ""
    section = doc.split("Attributes", 1)[-1]
    docs: dict[str, str] = {}
    names: list[str] = []
    for line in section.splitlines():
        header = re.match(r"^    ([a-z_0-9, ]+) : .+$", line)
        if header:
            names = [n.strip() for n in header.group(1).split(",")]
            for name in names:
                docs[name] = ""
        elif line.startswith("        ") and names:
            for name in names:
                docs[name] = (docs[name] + " " + line.strip()).strip()
    return docs


def field_label(name: str) -> str:
    """A parameter's label with its unit: ``min_area_mm2`` -> ``min area (mm²)``.

    Examples
    --------
    >>> field_label("background_line_mm"), field_label("min_area_mm2"), field_label("seed_k")
    ('background line (mm)', 'min area (mm²)', 'seed k')
    """
    if name.endswith("_mm2"):
        return name[: -len("_mm2")].replace("_", " ") + " (mm²)"
    if name.endswith("_mm"):
        return name[: -len("_mm")].replace("_", " ") + " (mm)"
    if name.endswith("_pct"):
        return name[: -len("_pct")].replace("_", " ") + " (%)"
    return name.replace("_", " ")


def make_params_form(params: Params | None = None) -> Any:
    """A magicgui Container with one widget per Params field (named as the field), set to ``params``.

    Returns
    -------
    magicgui.widgets.Container
        ``form[name].value`` reads and sets a field; :func:`form_params` turns the form into Params.
    """
    from magicgui import widgets

    params = params or Params()
    docs = params_docs()
    items = []
    for spec in fields(Params):
        name = spec.name
        if name in _HIDDEN:
            continue
        value = getattr(params, name)
        common = {"name": name, "label": field_label(name), "tooltip": docs.get(name, "")}
        if isinstance(value, bool):
            items.append(widgets.CheckBox(value=value, **common))
        elif isinstance(value, int):
            items.append(widgets.SpinBox(value=value, min=1, max=360, **common))
        elif isinstance(value, float):
            step = _STEPS.get(name, max(0.01, round(abs(value) / 10, 2)))
            items.append(widgets.FloatSpinBox(value=value, min=0.0, max=1e6, step=step, **common))
        elif name == "registration_model":
            items.append(widgets.ComboBox(value=value, choices=list(REGISTRATION_MODELS), **common))
        elif isinstance(value, tuple):
            text = ", ".join(f"{v:g}" for v in value)
            items.append(widgets.LineEdit(value=text, **common))
        else:  # pragma: no cover - every Params field is one of the above
            items.append(widgets.LineEdit(value=str(value), **common))
    return widgets.Container(widgets=items, name="params", labels=True)


def form_params(form: Any) -> Params:
    """Params from a form made by :func:`make_params_form`.

    Raises
    ------
    ValueError
        When a value is invalid (Params' own checks, or a malformed list of numbers).
    """
    values: dict[str, Any] = {}
    defaults = Params()
    for spec in fields(Params):
        if spec.name in _HIDDEN:
            continue
        value = form[spec.name].value
        if isinstance(getattr(defaults, spec.name), tuple):  # a list of numbers, typed as text
            value = tuple(float(v) for v in str(value).replace(";", ",").split(",") if v.strip())
        values[spec.name] = value
    return Params.from_dict(values)


def set_form_params(form: Any, params: Params) -> None:
    """Show ``params`` in a form made by :func:`make_params_form`."""
    for spec in fields(Params):
        if spec.name in _HIDDEN:
            continue
        value = getattr(params, spec.name)
        if isinstance(value, tuple):
            value = ", ".join(f"{v:g}" for v in value)
        form[spec.name].value = value
