"""The people and the farm of bench/soak.py: open pages polling, cordoners and editors on the
pages and through the API, and the farm breaking and healing providers. Each one records
every request (endpoint, status, latency) and every change acknowledged to it."""
from __future__ import annotations

import re
import threading
import time
from html.parser import HTMLParser

PASSWORD = "soak password 123"
CSRF_FIELD = r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"'


class Recorder:
    """Every request's endpoint, status and latency; and what was acknowledged."""

    def __init__(self):
        self.lock = threading.Lock()
        self.requests: dict[str, list[tuple[int, float]]] = {}
        self.failures: dict[str, list[str]] = {}  # no answer at all, or not the one expected
        self.edits: dict[int, tuple[float, str]] = {}  # provider id -> (acked at, access_url)
        self.cordons: dict[int, tuple[float, bool, str | None]] = {}
        self.counts: dict[str, int] = {}

    def add(self, endpoint: str, status: int, seconds: float) -> None:
        with self.lock:
            self.requests.setdefault(endpoint, []).append((status, seconds))

    def fail(self, endpoint: str, what: str) -> None:
        with self.lock:
            self.failures.setdefault(endpoint, []).append(what)

    def count(self, what: str) -> None:
        with self.lock:
            self.counts[what] = self.counts.get(what, 0) + 1

    def edited(self, provider_id: int, value: str) -> None:
        with self.lock:
            self.edits[provider_id] = (time.monotonic(), value)

    def cordoned(self, provider_id: int, cordoned: bool, reason: str | None) -> None:
        with self.lock:
            self.cordons[provider_id] = (time.monotonic(), cordoned, reason)


class Client:
    """One person's browser or API client: a requests session and the recorder."""

    def __init__(self, base: str, recorder: Recorder, user_agent: str):
        import requests

        self.base, self.recorder = base, recorder
        self.http = requests.Session()
        self.http.headers["User-Agent"] = user_agent
        self.csrf = ""

    def call(self, endpoint: str, method: str, path: str, **kwargs):
        import requests

        started = time.perf_counter()
        try:
            response = self.http.request(method, self.base + path, timeout=60,
                                         allow_redirects=False, **kwargs)
        except requests.RequestException as exc:
            self.recorder.fail(endpoint, f"{type(exc).__name__}: {exc}"[:200])
            return None
        self.recorder.add(endpoint, response.status_code, time.perf_counter() - started)
        return response

    def htmx(self, page: str) -> dict:
        return {"HX-Request": "true", "X-CSRFToken": self.csrf, "HX-Current-URL": self.base + page}

    def sign_in(self) -> bool:
        page = self.call("GET /login", "GET", "/login")
        token = page is not None and re.search(CSRF_FIELD, page.text)
        if not token:
            return False
        done = self.call("POST /login", "POST", "/login", data={
            "email": "admin@example.com", "password": PASSWORD, "csrf_token": token.group(1)})
        return done is not None and done.status_code == 303


class PageState:
    """What an open page's poll sends: its poll URL, fingerprint, stale banner, versions."""

    def __init__(self, html: str):
        self.url = re.search(r'<div hx-get="([^"]+)" hx-trigger="every', html).group(1).replace("&amp;", "&")
        self.fp = re.search(r'"fp": "([^"]+)"', html).group(1)
        stale = re.search(r'name="stale" value="([01])"', html)
        self.stale = stale.group(1) if stale else "0"
        self.known: dict[str, str] = {}
        self.update(html)

    def update(self, html: str) -> None:
        for tag in re.findall(r"<[a-z]+ [^>]*data-provider-id=[^>]*>", html):
            attrs = dict(re.findall(r'(data-[a-z-]+)="([^"]*)"', tag))
            if "data-version" in attrs:
                self.known[attrs["data-provider-id"]] = attrs["data-version"] + (
                    "." + attrs["data-workspaces"] if "data-workspaces" in attrs else "")
        fp = re.search(r'"fp": "([^"]+)"', html)
        if fp:
            self.fp = fp.group(1)

    def known_versions(self) -> str:
        return ",".join(f"{ident}.{version}" for ident, version in self.known.items())


def poller(client: Client, path: str, kind: str, stop: threading.Event, poll_s: float,
           reopen_s: float) -> None:
    """An open page: load it, poll it as htmx does, reopen it every `reopen_s`."""
    if not client.sign_in():
        client.recorder.fail("POST /login", "sign-in failed")
        return
    while not stop.is_set():
        page = client.call(f"GET {kind} page", "GET", path)
        if page is None or page.status_code != 200:
            stop.wait(poll_s)
            continue
        client.csrf = re.search(r'"X-CSRFToken": "([^"]+)"', page.text).group(1)
        state = PageState(page.text)
        opened = time.monotonic()
        while not stop.wait(poll_s) and time.monotonic() - opened < reopen_s:
            sep = "&" if "?" in state.url else "?"
            answer = client.call(f"GET poll ({kind})", "GET",
                                 f"{state.url}{sep}stale={state.stale}&fp={state.fp}",
                                 headers=client.htmx(path))
            if answer is None or answer.status_code != 200:
                continue
            rows = client.call(f"POST poll ({kind})", "POST", state.url, headers=client.htmx(path),
                               data={"fp": state.fp, "stale": state.stale,
                                     "known": state.known_versions()})
            if rows is None or rows.status_code != 200:
                continue
            if "providersChanged" in rows.headers.get("HX-Trigger", ""):
                break  # the list's set of rows changed: the page reloads it
            state.update(rows.text)


class FormFields(HTMLParser):
    """The fields a browser would submit from the form whose action contains `action`."""

    def __init__(self, action: str):
        super().__init__()
        self.action, self.inside, self.fields = action, False, []
        self._textarea: str | None = None
        self._select: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self.inside = self.action in (a.get("action") or a.get("hx-post") or "")
        if not self.inside or "name" not in a:
            if tag == "option" and self.inside and self._select and "selected" in a:
                self.fields.append((self._select, a.get("value", "")))
            return
        if tag == "input":
            kind = a.get("type", "text")
            if kind in ("checkbox", "radio"):
                if "checked" in a:
                    self.fields.append((a["name"], a.get("value", "on")))
            elif kind not in ("submit", "button", "file"):
                self.fields.append((a["name"], a.get("value", "")))
        elif tag == "textarea":
            self._textarea = a["name"]
            self.fields.append((a["name"], ""))
        elif tag == "select":
            self._select = a["name"]

    def handle_data(self, data):
        if self._textarea is not None:
            name, value = self.fields[-1]
            self.fields[-1] = (name, value + data)

    def handle_endtag(self, tag):
        if tag == "textarea":
            if self._textarea is not None and self.fields:
                name, value = self.fields[-1]
                self.fields[-1] = (name, value[1:] if value.startswith("\n") else value)
            self._textarea = None
        elif tag == "select":
            self._select = None
        elif tag == "form":
            self.inside = False


def page_cordoner(client: Client, providers: list[int], stop, rng, pause, recorder) -> None:
    if not client.sign_in():
        recorder.fail("POST /login", "sign-in failed")
        return
    page = client.call("GET list page", "GET", "/manage/providers/")
    client.csrf = re.search(r'"X-CSRFToken": "([^"]+)"', page.text).group(1)
    state = {p: False for p in providers}
    n = 0
    while not stop.wait(rng.expovariate(1 / pause)):
        pid = rng.choice(providers)
        headers = client.htmx("/manage/providers/")
        if not state[pid]:
            dialog = client.call("GET cordon dialog", "GET", f"/manage/providers/{pid}/cordon",
                                 headers=headers)
            token = dialog is not None and re.search(CSRF_FIELD, dialog.text)
            if not token:
                continue
            n += 1
            reason = f"page maintenance {n}"
            done = client.call("POST cordon (page)", "POST", f"/manage/providers/{pid}/cordon",
                               headers=headers, data={"csrf_token": token.group(1), "reason": reason})
            if done is not None and done.status_code == 200:
                if "providersChanged" in done.headers.get("HX-Trigger", ""):
                    recorder.cordoned(pid, True, reason)
                    state[pid] = True
                else:
                    recorder.count("page cordon answered with the row (changed meanwhile)")
        else:
            done = client.call("POST uncordon (page)", "POST", f"/manage/providers/{pid}/uncordon",
                               headers=headers, data={"csrf_token": client.csrf})
            if done is not None and done.status_code == 200:
                if "tag-cordoned" in done.text:
                    recorder.count("page uncordon answered 200 with the row still cordoned")
                else:
                    recorder.cordoned(pid, False, None)
                    state[pid] = False


def api_cordoner(client: Client, providers: list[int], stop, rng, pause, recorder) -> None:
    state = {p: False for p in providers}
    n = 0
    while not stop.wait(rng.expovariate(1 / pause)):
        pid = rng.choice(providers)
        if not state[pid]:
            n += 1
            reason = f"api maintenance {n}"
            done = client.call("POST /api/v1/providers/<id>/cordon", "POST",
                               f"/api/v1/providers/{pid}/cordon", json={"reason": reason})
            if done is not None and done.status_code == 200 and done.json().get("cordoned"):
                recorder.cordoned(pid, True, reason)
                state[pid] = True
            elif done is not None and done.status_code == 409:
                recorder.count("API cordon refused: changed meanwhile (409)")
        else:
            done = client.call("POST /api/v1/providers/<id>/uncordon", "POST",
                               f"/api/v1/providers/{pid}/uncordon")
            if done is not None and done.status_code == 200:
                if done.json().get("cordoned"):
                    recorder.count("API uncordon answered 200 with the provider still cordoned")
                else:
                    recorder.cordoned(pid, False, None)
                    state[pid] = False


def page_editor(client: Client, providers: list[int], stop, rng, pause, recorder) -> None:
    if not client.sign_in():
        recorder.fail("POST /login", "sign-in failed")
        return
    page = client.call("GET list page", "GET", "/manage/providers/")
    client.csrf = re.search(r'"X-CSRFToken": "([^"]+)"', page.text).group(1)
    n = 0
    while not stop.wait(rng.expovariate(1 / pause)):
        pid = rng.choice(providers)
        n += 1
        value = f"https://page-{n}.soak.example.com"
        for _attempt in range(5):
            headers = client.htmx("/manage/providers/")
            form = client.call("GET edit form", "GET", f"/manage/providers/{pid}/edit", headers=headers)
            if form is None or form.status_code != 200:
                break
            parser = FormFields(f"/manage/providers/{pid}/edit")
            parser.feed(form.text)
            fields = [(k, v) for k, v in parser.fields if k != "access_url"] + [("access_url", value)]
            done = client.call("POST edit form", "POST", f"/manage/providers/{pid}/edit",
                               headers=headers, data=fields)
            if done is None:
                break
            if done.status_code == 200 and "providersChanged" in done.headers.get("HX-Trigger", ""):
                recorder.edited(pid, value)
                break
            if done.status_code == 409:
                recorder.count("page edit: conflict (409), read again")
                continue
            recorder.fail("POST edit form", f"{done.status_code}: {done.text[:300]}")
            break


def api_editor(client: Client, providers: list[int], stop, rng, pause, recorder) -> None:
    n = 0
    while not stop.wait(rng.expovariate(1 / pause)):
        pid = rng.choice(providers)
        n += 1
        value = f"https://api-{n}.soak.example.com"
        for _attempt in range(5):
            read = client.call("GET /api/v1/providers/<id>", "GET", f"/api/v1/providers/{pid}")
            if read is None or read.status_code != 200:
                break
            done = client.call("PATCH /api/v1/providers/<id>", "PATCH", f"/api/v1/providers/{pid}",
                               json={"access_url": value}, headers={"If-Match": read.headers["ETag"]})
            if done is None:
                break
            if done.status_code == 200 and done.json().get("access_url") == value:
                recorder.edited(pid, value)
                break
            if done.status_code == 412:
                recorder.count("API edit: changed meanwhile (412), read again")
                continue
            recorder.fail("PATCH /api/v1/providers/<id>", f"{done.status_code}: {done.text[:300]}")
            break


def flapper(farm, flapping: list, stop, rng, every: float, recorder) -> None:
    """Break a healthy flapping provider or heal a broken one, every `every` s or so."""
    while flapping and not stop.wait(rng.expovariate(1 / every)):
        p = rng.choice(flapping)
        p.broken = not p.broken
        farm.deploy_marker(p.server, "soak-intruder" if p.broken else p.name, p.namespace)
        recorder.count("farm: broke a provider" if p.broken else "farm: healed a provider")
