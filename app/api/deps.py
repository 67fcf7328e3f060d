"""What the routes need, injected as typed dependencies: no route looks in app.state.

create_app() builds one `Services` per application; the lifespan fills in the registry
runtime and the live scoring contexts once they are open. Routes declare what they use with
the Annotated aliases below (`SettingsDep`, `RuntimeDep`, `LiveDep`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request

from app.api.oidc import OidcVerifier
from app.config import Settings
from app.errors import NotReady
from app.registry.runtime import RegistryRuntime


@dataclass
class Services:
    """One application's collaborators (constructor injection, as MLServer's data plane)."""

    settings: Settings
    runtime: RegistryRuntime | None = None  # None: fixed contexts (tests) or not open yet
    live: Any = None  # LiveScoring or StaticContexts, once the lifespan has opened it
    data_plane: Any = None  # the DataPlane scoring requests go to, once live is open
    monitoring: Any = None  # ReplicaMonitoring, with a registry and TIERWISE_MONITORING on
    oidc: OidcVerifier | None = field(init=False, default=None)  # bearer JWTs, when configured

    def __post_init__(self) -> None:
        self.oidc = OidcVerifier.from_settings(self.settings)

    @property
    def ready(self) -> bool:
        """A verified scoring context is live."""
        return bool(self.live is not None and self.live.ready)


def services_of(app: Any) -> Services:
    """The Services an application was built with (the one place that reads app.state)."""
    services: Services = app.state.services
    return services


def get_services(request: Request) -> Services:
    """Dependency: the application's Services."""
    return services_of(request.app)


def get_settings(request: Request) -> Settings:
    """Dependency: the application's settings."""
    return services_of(request.app).settings


def get_runtime(request: Request) -> RegistryRuntime:
    """Dependency: the registry runtime; 503 when this application has none."""
    runtime = services_of(request.app).runtime
    if runtime is None:
        raise NotReady("this replica has no registry runtime")
    return runtime


def get_live(request: Request) -> Any:
    """Dependency: the live scoring contexts; 503 until they are open."""
    live = services_of(request.app).live
    if live is None:
        raise NotReady("no scoring context is open yet")
    return live


ServicesDep = Annotated[Services, Depends(get_services)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
RuntimeDep = Annotated[RegistryRuntime, Depends(get_runtime)]
LiveDep = Annotated[Any, Depends(get_live)]
