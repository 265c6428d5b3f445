"""The Content-Security-Policy as a browser enforces it: what an attacker could slip into a page
(an inline script or handler, an htmx expression) does not run, and the app's own pages work
without anything the policy forbids (every browser test fails on a reported violation)."""
import pytest

pytestmark = pytest.mark.browser


def test_injected_script_handlers_and_htmx_expressions_do_not_run(browser, live_server, actions):
    actions.user()
    context = browser.new_context(base_url=live_server)
    page = context.new_page()
    reports = []
    page.on("console", lambda message: reports.append(message.text))
    page.goto("/login")
    page.wait_for_function("window.htmx !== undefined")
    # What a stored cross-site scripting bug would put in a page, had escaping failed.
    page.evaluate("""() => {
        const slot = document.createElement("div");
        slot.innerHTML = '<img src="data:image/gif;base64,R0lGODlhAQABAAAAACw=" onload="window.pwned = 1">' +
            '<div id="x" hx-get="/login" hx-trigger="load" hx-vals=\\'js:{a: window.pwned = 2}\\'></div>';
        document.body.appendChild(slot);
        const script = document.createElement("script");
        script.textContent = "window.pwned = 3";
        document.body.appendChild(script);
        htmx.process(slot);
    }""")
    page.wait_for_timeout(500)
    assert page.evaluate("window.pwned") is None
    assert any("Content Security Policy" in text for text in reports), reports
    context.close()


def test_the_badge_poll_sends_what_the_page_shows_without_eval(page, sign_in, make_provider):
    sign_in(page)
    provider = make_provider("east")
    page.goto("/manage/providers/")
    with page.expect_request(lambda r: r.method == "POST" and "/manage/providers/status" in r.url) as posted:
        page.evaluate("htmx.trigger(document.body, 'providerStatusStale')")
    assert f"known={provider.id}." in posted.value.post_data
