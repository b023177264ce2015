"""Reply templates from the configuration, rendered with Jinja2 in a sandbox."""

from __future__ import annotations

from collections.abc import Mapping

from jinja2 import StrictUndefined, Template, TemplateError
from jinja2.sandbox import SandboxedEnvironment

from libs.common.config import Config

DEFAULT_LANGUAGE = "en"


class TemplateMissing(LookupError):
    """No template of that name for the channel (a configuration gap, not a transient fault)."""


class Templates:
    """Compiled templates of one configuration: name -> channel -> language."""

    def __init__(self, config: Config) -> None:
        self._text_env = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
        self._templates: dict[str, dict[str, dict[str, Template]]] = {
            name: {
                channel: {lang: self._text_env.from_string(text) for lang, text in by_lang.items()}
                for channel, by_lang in by_channel.items()
            }
            for name, by_channel in config.templates.items()
        }

    def render(
        self, name: str, channel: str, language: str | None, params: Mapping[str, str]
    ) -> str:
        by_lang = self._templates.get(name, {}).get(channel)
        if not by_lang:
            raise TemplateMissing(f"no template {name!r} for channel {channel!r}")
        template = by_lang.get(language or DEFAULT_LANGUAGE) or by_lang.get(DEFAULT_LANGUAGE)
        if template is None:
            template = next(iter(by_lang.values()))
        try:
            return str(template.render(**params)).strip()
        except TemplateError as exc:
            raise TemplateMissing(f"template {name!r} for {channel!r} failed: {exc}") from exc
