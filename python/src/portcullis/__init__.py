"""FastAPI support for apps behind the portcullis authentication proxy.

Give a handler the signed-in user with one ``Depends``::

    from typing import Annotated
    from fastapi import Depends, FastAPI
    from portcullis import Portcullis, User

    auth = Portcullis(jwks_url="http://portcullis:8080/auth/jwks.json", audience="shop")
    app = FastAPI()

    @app.get("/me")
    def me(user: Annotated[User, Depends(auth.user)]) -> dict[str, str]:
        return {"id": user.id, "email": user.email}

See :class:`Portcullis` and the package README.
"""

from ._auth import Portcullis, User
from ._jwks import JwksCache, JwksError, UnknownKeyError

__all__ = ["JwksCache", "JwksError", "Portcullis", "UnknownKeyError", "User"]
__version__ = "0.1.0"
