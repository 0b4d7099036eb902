"""`keypaint serve`: the web page, A1111's HTTP API and keypaint's job API over one `Painter`."""

from keypaint.server.app import create_app
from keypaint.server.config import ServerConfig

__all__ = ["ServerConfig", "create_app"]
