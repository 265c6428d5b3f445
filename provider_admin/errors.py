"""Error pages: a page for a plain request, a message HTMX shows in the flash area."""
from flask import Flask, make_response, render_template
from flask_wtf.csrf import CSRFError

from .problems import is_api_request, problem
from .htmx import is_fragment_request

MESSAGES = {
    400: "The request could not be understood.",
    403: "You do not have permission to open this page.",
    404: "There is nothing at this address.",
    405: "This address does not accept that kind of request.",
    409: "That change conflicts with the current state; reload and try again.",
    413: "The submitted data is too large.",
    500: "Something went wrong on our side. The error has been logged.",
}


def error_response(code: int, message: str | None = None):
    if is_api_request():
        return problem(code, detail=message)
    message = message or MESSAGES.get(code, "Error")
    if is_fragment_request():
        response = make_response(
            render_template("_flash.html", messages=[("error", message)]), code
        )
        response.headers["HX-Retarget"] = "#flashes"
        response.headers["HX-Reswap"] = "innerHTML"
    else:
        response = make_response(render_template("error.html", code=code, message=message), code)
    response.vary.add("HX-Request")
    return response


def init_app(app: Flask) -> None:
    for code in MESSAGES:
        app.register_error_handler(code, lambda e, code=code: error_response(code))

    @app.errorhandler(CSRFError)
    def csrf_error(error):
        return error_response(
            400, f"The form could not be verified ({error.description}). Reload the page and try again."
        )
