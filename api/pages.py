"""The HTML the server writes itself: the login form (the map page is a static file, ``api/static/index.html``)."""

from __future__ import annotations

from html import escape

LOGIN_FORM = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>tileclass: sign in</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body {{ font: 15px system-ui, sans-serif; display: grid; place-items: center; height: 100vh; margin: 0;
       background: #f4f5f7; color: #222; }}
form {{ background: #fff; padding: 24px 28px; border-radius: 8px; box-shadow: 0 1px 4px #0002; width: 320px; }}
input {{ width: 100%; box-sizing: border-box; padding: 8px; margin: 10px 0; font: inherit; }}
button {{ padding: 8px 16px; font: inherit; }} .problem {{ color: #a11; }}
</style></head>
<body><form method="post" action="/login">
<h1 style="font-size:18px;margin:0 0 8px">tileclass</h1>
<label for="token">This server's token: <code>TILECLASS_API_TOKEN</code>, or the one in the login URL that
<code>tileclass serve</code> printed.</label>
<input id="token" name="token" type="password" autocomplete="current-password" autofocus required>
<input type="hidden" name="next" value="{next_url}">
{problem}<button type="submit">Open the map</button>
</form></body></html>
"""


def login_page(*, next_url: str = "/", problem: str = "") -> str:
    """The sign-in form, sending the user on to ``next_url`` (a path on this server) once the token is right."""
    shown = f'<p class="problem">{escape(problem)}</p>' if problem else ""
    return LOGIN_FORM.format(next_url=escape(safe_next(next_url)), problem=shown)


def safe_next(next_url: str) -> str:
    """``next_url`` when it is a path on this server, else ``/``: the form never sends the user elsewhere."""
    if not next_url.startswith("/") or next_url.startswith("//") or "\\" in next_url:
        return "/"
    return next_url
