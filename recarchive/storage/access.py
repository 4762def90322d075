"""An object store that refuses us for want of credentials, said in one line.

The clients fsspec drives raise their own exception types for this (botocore's
NoCredentialsError is not an OSError), which would otherwise reach the user as a traceback;
on Ray they come from a worker whose node lacks what the driver's machine has.
"""

from __future__ import annotations

CREDENTIAL_ERRORS = frozenset({
    "NoCredentialsError", "PartialCredentialsError", "CredentialRetrievalError",
    "NoAuthTokenError", "DefaultCredentialsError", "RefreshError",
})


def credentials_problem(error: BaseException) -> str | None:
    """What to do, in one line, if `error` says the storage client found no usable
    credentials; None for any other error."""
    if not {cls.__name__ for cls in type(error).__mro__} & CREDENTIAL_ERRORS:
        return None
    return (f"no credentials for object storage ({type(error).__name__}: {error}); give them "
            "through the environment (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
            "GOOGLE_APPLICATION_CREDENTIALS, ...) or an instance role, on every Ray node too "
            "(deploy/README.md)")
