"""A readable device label from a User-Agent: "Chrome on macOS", "curl"."""

from __future__ import annotations

import re

_BROWSERS: tuple[tuple[str, str], ...] = (
    # Order matters: Edge and Opera say "Chrome", Chrome says "Safari".
    (r"\bEdg(e|A|iOS)?/", "Edge"),
    (r"\b(OPR|Opera)/", "Opera"),
    (r"\bSamsungBrowser/", "Samsung Internet"),
    (r"\b(Firefox|FxiOS)/", "Firefox"),
    (r"\b(Chrome|CriOS|Chromium)/", "Chrome"),
    (r"\bVersion/[\d.]+.*\bSafari/", "Safari"),
)

_SYSTEMS: tuple[tuple[str, str], ...] = (
    (r"\b(iPhone|iPad|iPod)\b", "iOS"),
    (r"\bAndroid\b", "Android"),
    (r"\bCrOS\b", "ChromeOS"),
    (r"\b(Macintosh|Mac OS X)\b", "macOS"),
    (r"\bWindows\b", "Windows"),
    (r"\bLinux\b", "Linux"),
)

_TOOL = re.compile(r"^([A-Za-z][A-Za-z0-9._-]{0,40})/")
"""Command-line clients and libraries lead with product/version: curl/8.5.0."""

UNKNOWN = "Unknown device"


def _first(rules: tuple[tuple[str, str], ...], agent: str) -> str | None:
    return next((name for pattern, name in rules if re.search(pattern, agent)), None)


def device_label(user_agent: str | None) -> str:
    agent = (user_agent or "").strip()[:512]
    if not agent:
        return UNKNOWN
    browser, system = _first(_BROWSERS, agent), _first(_SYSTEMS, agent)
    if browser and system:
        return f"{browser} on {system}"
    if browser or system:
        return browser or system or UNKNOWN
    tool = _TOOL.match(agent)
    return tool.group(1) if tool and tool.group(1) != "Mozilla" else UNKNOWN
