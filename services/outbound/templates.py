"""Reply templates from the configuration, rendered with Jinja2 in a sandbox.

An email template may have an HTML variant under the language key ``{lang}.html`` (``en.html``),
rendered with autoescape so customer-controlled params cannot inject markup; without one, the
HTML part is the text escaped, with ``<br>`` for line breaks. SMS text is cut to
``outbound.sms_max_segments`` parts, so a long reference or promise cannot triple the cost.
"""

from __future__ import annotations

from collections.abc import Mapping

from jinja2 import StrictUndefined, Template, TemplateError
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import escape

from libs.common.config import Config
from services.outbound.segments import truncate_to_segments

DEFAULT_LANGUAGE = "en"
HTML_SUFFIX = ".html"


class TemplateMissing(LookupError):
    """No template of that name for the channel (a configuration gap, not a transient fault)."""


class Templates:
    """Compiled templates of one configuration: name -> channel -> language."""

    def __init__(self, config: Config) -> None:
        self._text_env = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
        self._html_env = SandboxedEnvironment(undefined=StrictUndefined, autoescape=True)
        self._sms_max_segments = config.outbound.sms_max_segments
        self._templates: dict[str, dict[str, dict[str, Template]]] = {
            name: {
                channel: {lang: self._compile(lang, text) for lang, text in by_lang.items()}
                for channel, by_lang in by_channel.items()
            }
            for name, by_channel in config.templates.items()
        }

    def _compile(self, lang: str, text: str) -> Template:
        env = self._html_env if lang.endswith(HTML_SUFFIX) else self._text_env
        return env.from_string(text)

    def render(
        self, name: str, channel: str, language: str | None, params: Mapping[str, str]
    ) -> str:
        all_langs = self._templates.get(name, {}).get(channel, {})
        by_lang = {k: t for k, t in all_langs.items() if not k.endswith(HTML_SUFFIX)}
        if not by_lang:
            raise TemplateMissing(f"no template {name!r} for channel {channel!r}")
        template = by_lang.get(language or DEFAULT_LANGUAGE) or by_lang.get(DEFAULT_LANGUAGE)
        if template is None:
            template = next(iter(by_lang.values()))
        text = _render(template, name, channel, params)
        if channel == "sms":
            text = truncate_to_segments(text, self._sms_max_segments)
        return text

    def render_html(
        self, name: str, channel: str, language: str | None, params: Mapping[str, str]
    ) -> str:
        """The HTML part of a templated email: its ``.html`` variant, else the text escaped."""
        by_lang = self._templates.get(name, {}).get(channel, {})
        lang = language or DEFAULT_LANGUAGE
        template = by_lang.get(lang + HTML_SUFFIX) or by_lang.get(DEFAULT_LANGUAGE + HTML_SUFFIX)
        if template is not None:
            return _render(template, name, channel, params)
        return text_to_html(self.render(name, channel, language, params))


def text_to_html(text: str) -> str:
    """Plain text as HTML: escaped, line breaks kept."""
    return "<br>\n".join(str(escape(line)) for line in text.split("\n"))


def _render(template: Template, name: str, channel: str, params: Mapping[str, str]) -> str:
    try:
        return str(template.render(**params)).strip()
    except TemplateError as exc:
        raise TemplateMissing(f"template {name!r} for {channel!r} failed: {exc}") from exc
