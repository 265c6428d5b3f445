"""The forms every area shares: the base of every form (what no field takes, refused at the field
before any validator runs) and the button-only confirmation."""
import re

from flask import current_app, request
from flask_wtf import FlaskForm
from flask_wtf.form import _Auto, _is_submitted
from werkzeug.datastructures import CombinedMultiDict, MultiDict
from wtforms import TextAreaField

FILE_REFUSED = "Paste the text; files are not accepted here."
TOO_DEEP = "This text is nested too deeply to be read."

# Control characters (Unicode category Cc) other than tab, and other than line breaks where a
# field takes several lines; lone surrogates are not text at all (no database stores them).
_SINGLE_LINE_REFUSED = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")
_MULTI_LINE_REFUSED = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def text_problem(value, *, multiline: bool, limit: int) -> str | None:
    """Why `value` is not acceptable text for a field, or None when it is."""
    if not isinstance(value, str):
        return FILE_REFUSED
    if len(value) > limit or len(value.encode("utf-8", "surrogatepass")) > limit:
        return f"This is too long: the limit is {limit // 1024} KiB ({limit} bytes)."
    if _SURROGATE.search(value):
        return "This text holds invalid Unicode (a lone surrogate); paste it again from its source."
    found = (_MULTI_LINE_REFUSED if multiline else _SINGLE_LINE_REFUSED).search(value)
    if found is None:
        return None
    if found.group() in "\r\n":
        return "This field takes a single line; remove the line breaks."
    return f"This text holds a control character (U+{ord(found.group()):04X}); remove it."


class BaseForm(FlaskForm):
    """Every form of the app inherits this. Before the fields see their input, a value that is
    a file, holds NUL or other control characters (line breaks too, in a single-line field) or
    invalid Unicode, or is longer than MAX_FORM_FIELD_BYTES is taken away and the field shows
    why; a validator that recurses too deeply on what it was given refuses it the same way.
    Forms read form-encoded fields only (never a JSON body)."""

    class Meta(FlaskForm.Meta):
        def wrap_formdata(self, form, formdata):
            if formdata is _Auto:
                formdata = CombinedMultiDict((request.files, request.form)) if _is_submitted() else None
            form.refused = {}
            if formdata is None:
                return None
            limit = int(current_app.config["MAX_FORM_FIELD_BYTES"])
            fields = {field.name: field for field in form}
            kept = MultiDict()
            for key, value in formdata.items(multi=True):
                field = fields.get(key)
                problem = field and text_problem(
                    value, multiline=isinstance(field, TextAreaField), limit=limit)
                if problem:
                    form.refused.setdefault(key, problem)
                else:
                    kept.add(key, value)
            return kept

    refused: dict[str, str]

    def process(self, formdata=None, obj=None, data=None, extra_filters=None, **kwargs):
        super().process(formdata, obj, data=data, extra_filters=extra_filters, **kwargs)
        for field in self:
            if field.name in self.refused:
                field.process_errors = [self.refused[field.name]]

    def validate(self, extra_validators=None) -> bool:
        """WTForms' validation (validators, then `validate_<field>` methods), field by field, with
        a refused input reported alone: the validators saw the field empty."""
        extra = {name: list(validators) for name, validators in (extra_validators or {}).items()}
        valid = True
        for name, field in self._fields.items():
            inline = getattr(type(self), f"validate_{name}", None)
            chain = extra.get(name, []) + ([inline] if inline else [])
            try:
                valid = field.validate(self, chain) and valid
            except RecursionError:
                field.errors, valid = [TOO_DEEP], False
            if field.name in self.refused:
                field.errors, valid = [self.refused[field.name]], False
        return valid


class ConfirmForm(BaseForm):
    """A button-only form: its CSRF token is all it carries."""
