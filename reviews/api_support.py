from rest_framework.parsers import JSONParser
from rest_framework.views import exception_handler as api_exception_handler  # noqa: F401


class LimitedJSONParser(JSONParser):
    pass
