"""`ServerState`: what every route needs, built once per app (no module globals)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from PIL import Image

from keypaint.errors import InvalidParams, KeypaintError
from keypaint.server.config import ServerConfig
from keypaint.server.errors import rename
from keypaint.server.models import ModelHost
from keypaint.server.spec import JobSpec, check_budget
from keypaint.server.stores import Store
from keypaint.server.uploads import decode_upload
from keypaint.server.worker import Worker


@dataclass
class ServerState:
    config: ServerConfig
    store: Store
    host: ModelHost
    worker: Worker

    def upload(self, text: object, field: str) -> tuple[bytes, Image.Image]:
        """An uploaded picture, size-checked (422 naming `field`)."""
        return decode_upload(text, field, max_bytes=self.config.max_body_bytes,
                             max_pixels=self.config.max_image_pixels)

    def check(self, spec: JobSpec, init: Image.Image | None, mask: Image.Image | None,
              names: dict[str, str], model_field: str) -> JobSpec:
        """Validate before queueing: the model exists and the params fit the limits (errors use `names`).

        Returns `spec` with its model name resolved to the one that will be loaded."""
        if spec.model is not None:
            try:
                spec = replace(spec, model=self.host.resolve(spec.model))
            except KeypaintError as exc:
                raise InvalidParams(model_field, str(exc)) from None
        painter = self.host.current
        try:
            params = spec.with_pictures(init, mask)
            if spec.model not in (None, painter.model.name) and not params.flow.is_default:
                params = replace(params, flow=type(params.flow)())  # another model's: checked once it loads
            # the params, adapter files and content policy, as the CLI checks them; then the server's budget
            check_budget(painter.resolve(params), max_pixel_steps=self.config.max_pixel_steps)
        except InvalidParams as err:
            raise rename(err, names) from None
        return spec
