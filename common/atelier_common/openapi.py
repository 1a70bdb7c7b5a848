"""GET /openapi.json: the service's OpenAPI 3.1 description, `openapi.json` in its package.

Read once at boot and served as bytes: the file is the reference, nothing rebuilds it per request."""
from importlib import resources

from flask import Response


def register_openapi(app, package: str):
    document = resources.files(package).joinpath("openapi.json").read_bytes()

    def openapi():
        return Response(document, mimetype="application/json")

    app.add_url_rule("/openapi.json", "openapi", openapi, methods=["GET"])


def load_document(package: str) -> dict:
    import json

    return json.loads(resources.files(package).joinpath("openapi.json").read_text())


def documented_requests(document: dict):
    """Every response of every operation that carries an `x-request` (the request that produces
    it), as dicts: method, path (the template), status, url (path and query to send), body (bytes
    or None), headers, and the response object. Used by tools/openapi_examples.py to fetch the
    examples and by the tests to check that each operation answers as documented."""
    import json

    for path, item in document["paths"].items():
        for method, operation in item.items():
            for status, response in operation["responses"].items():
                request = response.get("x-request")
                if request is None:
                    continue
                headers = {}
                body = None
                if "body" in request:
                    body = json.dumps(request["body"]).encode()
                    headers["Content-Type"] = "application/json"
                elif "body_text" in request:
                    body = request["body_text"].encode()
                    headers["Content-Type"] = request["content_type"]
                yield {"method": method.upper(), "path": path, "status": int(status),
                       "url": request.get("path", path), "body": body, "headers": headers,
                       "record": request.get("record", True),
                       "response": response}
