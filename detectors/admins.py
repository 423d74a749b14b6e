"""Who may hand out permissions: the actor's admin status from the people directory's flag, or from
the roles and departments configured as admin (issue 30: nothing is an admin role unless configured,
and an unknown role is not a non-admin one)."""

from __future__ import annotations


def admin_status(
    flag: bool | None, role: str | None, department: str | None, admin_roles: tuple[str, ...],
    admin_departments: tuple[str, ...],
) -> bool | None:
    """Whether an actor may hand out permissions: True, False, or None when that is not known.

    The people directory's admin ``flag`` decides when it is set; otherwise a role or department
    configured as admin makes an admin. An actor is a non-admin only when something is known about it
    (a role or a department) *and* admin roles or departments are configured: an unknown role is not a
    non-admin one.

    >>> admin_status(None, "admin", None, ("admin",), ())
    True
    >>> admin_status(None, "agent", "support", ("admin",), ())
    False
    >>> admin_status(None, None, None, ("admin",), ()), admin_status(None, "agent", None, (), ())
    (None, None)
    >>> admin_status(False, "admin", None, ("admin",), ())
    False
    """
    if flag is not None:
        return flag
    if role in admin_roles or department in admin_departments:
        return True
    if (role is None and department is None) or not (admin_roles or admin_departments):
        return None
    return False


def is_admin(
    role: str | None, department: str | None, admin_roles: tuple[str, ...], admin_departments: tuple[str, ...],
    flag: bool | None = None,
) -> bool:
    """Whether an actor is known to be an admin (:func:`admin_status` is True)."""
    return admin_status(flag, role, department, admin_roles, admin_departments) is True
