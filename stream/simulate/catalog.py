"""Static catalogue of the simulated organisation: departments, their resources, roles and offices.

Every identifier is made up (``customers.profile``, ``u-0001``, ``svc-etl-01``); IP addresses come
from private (RFC 1918) or documentation (RFC 5737) ranges, so nothing here points at a real system.
"""

from __future__ import annotations

from dataclasses import dataclass

#: (country, UTC offset in minutes, office /16 prefix). Offices of the fictitious company.
OFFICES: tuple[tuple[str, int, str], ...] = (
    ("GB", 0, "10.1"),
    ("US", -300, "10.2"),
    ("DE", 60, "10.3"),
    ("IN", 330, "10.4"),
    ("PL", 60, "10.5"),
    ("BR", -180, "10.6"),
)
OFFICE_WEIGHTS = (30, 25, 15, 15, 10, 5)
#: Countries people travel to (country, UTC offset in minutes); hotel Wi-Fi is RFC 5737 198.51.100.0/24.
TRAVEL_COUNTRIES: tuple[tuple[str, int], ...] = (
    ("FR", 60), ("ES", 60), ("NL", 60), ("JP", 540), ("SG", 480), ("CA", -300), ("AU", 600),
)
#: Where stolen credentials get used from (documentation range 203.0.113.0/24 and CGNAT 100.64/10).
ATTACKER_COUNTRIES = ("RU", "KP", "NG", "VN", "RO", "CN")
ATTACKER_AGENTS = (
    "python-requests/2.31.0",
    "curl/8.4.0",
    "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0",
)
BROWSER_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Version/17.5 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:127.0) Gecko/20100101 Firefox/127.0",
)


@dataclass(frozen=True, slots=True)
class ResourceSpec:
    """A resource in the catalogue: id, kind, sensitivity, data categories and average row width."""

    id: str
    kind: str
    sensitivity: str
    categories: tuple[str, ...]
    row_bytes: int
    #: does it hold records about data subjects (customers, employees)?
    subjects: bool = False


def _r(rid: str, kind: str, sens: str, cats: str = "", row: int = 400, subj: bool = False) -> ResourceSpec:
    return ResourceSpec(rid, kind, sens, tuple(c for c in cats.split(",") if c), row, subj)


#: department -> (resources, roles with weights, night on-call?, resource adopted mid-stream)
DEPARTMENTS: dict[str, tuple[tuple[ResourceSpec, ...], dict[str, int], bool, ResourceSpec]] = {
    "support": (
        (_r("customers.profile", "table", "restricted", "pii.contact", 812, True),
         _r("support.tickets", "table", "confidential", "pii.contact", 1500, True),
         _r("crm.contact-api", "api", "confidential", "pii.contact", 600, True),
         _r("support.macros", "table", "internal", "", 300)),
        {"agent": 8, "manager": 1, "analyst": 1}, False,
        _r("support.ticket_insights", "table", "confidential", "pii.contact", 700, True),
    ),
    "sales": (
        (_r("crm.accounts", "table", "confidential", "pii.contact", 900, True),
         _r("crm.opportunities", "table", "internal", "", 500),
         _r("sales.contracts-bucket", "bucket", "confidential", "pii.contact", 250_000, True),
         _r("sales.forecast", "table", "internal", "", 300)),
        {"account_exec": 6, "analyst": 2, "manager": 1}, False,
        _r("sales.pipeline_v2", "table", "internal", "", 450),
    ),
    "finance": (
        (_r("finance.ledger", "table", "confidential", "", 350),
         _r("customers.payment_methods", "table", "restricted", "pii.financial", 420, True),
         _r("finance.invoices", "table", "confidential", "pii.contact,pii.financial", 1100, True),
         _r("finance.payroll", "table", "restricted", "pii.hr,pii.financial", 600, True)),
        {"analyst": 5, "accountant": 4, "manager": 1}, False,
        _r("finance.ledger_2027", "table", "confidential", "", 350),
    ),
    "hr": (
        (_r("hr.employees", "table", "restricted", "pii.hr,pii.contact", 1400, True),
         _r("hr.medical_leave", "table", "restricted", "health,pii.hr", 900, True),
         _r("hr.recruiting", "table", "confidential", "pii.contact", 1200, True),
         _r("hr.policies-bucket", "bucket", "internal", "", 80_000)),
        {"partner": 5, "recruiter": 3, "manager": 1}, False,
        _r("hr.performance_reviews", "table", "restricted", "pii.hr", 2000, True),
    ),
    "engineering": (
        (_r("app.events", "table", "internal", "", 300),
         _r("app.users", "table", "confidential", "pii.contact", 500, True),
         _r("logs-bucket", "bucket", "internal", "location", 1_000_000),
         _r("deploy.api", "api", "internal", "", 200)),
        {"engineer": 8, "manager": 1}, True,
        _r("app.feature_flags_v2", "table", "internal", "", 150),
    ),
    "data_science": (
        (_r("warehouse.sessions", "table", "confidential", "location", 250, True),
         _r("warehouse.orders", "table", "confidential", "pii.financial", 380, True),
         _r("warehouse.customers_agg", "table", "internal", "", 200),
         _r("ml.features-bucket", "bucket", "confidential", "location", 2_000_000)),
        {"analyst": 5, "engineer": 3, "manager": 1}, False,
        _r("warehouse.churn_scores", "table", "confidential", "pii.contact", 180, True),
    ),
    "marketing": (
        (_r("marketing.campaigns", "table", "internal", "", 400),
         _r("marketing.audiences", "table", "confidential", "pii.contact", 300, True),
         _r("web.analytics-api", "api", "internal", "location", 250),
         _r("marketing.assets-bucket", "bucket", "public", "", 3_000_000)),
        {"analyst": 4, "manager": 1, "designer": 2}, False,
        _r("marketing.consent_v2", "table", "confidential", "pii.contact", 220, True),
    ),
    "legal": (
        (_r("legal.contracts", "table", "confidential", "pii.contact", 5000, True),
         _r("legal.cases", "table", "restricted", "pii.contact", 3000, True),
         _r("legal.minors_consent", "table", "restricted", "minors,pii.contact", 700, True),
         _r("legal.dsar-bucket", "bucket", "restricted", "pii.contact", 400_000, True)),
        {"counsel": 3, "paralegal": 2, "manager": 1}, False,
        _r("legal.retention_register", "table", "confidential", "", 600),
    ),
    "it_admin": (
        (_r("iam.directory", "table", "confidential", "pii.contact", 700, True),
         _r("iam.audit_log", "table", "confidential", "", 500),
         _r("endpoint.inventory", "table", "internal", "", 350),
         _r("iam.api", "api", "restricted", "", 300)),
        {"admin": 5, "manager": 1}, True,
        _r("iam.access_reviews", "table", "confidential", "", 400),
    ),
    "security": (
        (_r("siem.alerts", "table", "confidential", "location", 900),
         _r("siem.raw-bucket", "bucket", "restricted", "location,pii.contact", 1_500_000),
         _r("iam.audit_log", "table", "confidential", "", 500),
         _r("vuln.findings", "table", "internal", "", 700)),
        {"analyst": 4, "engineer": 2, "manager": 1}, True,
        _r("siem.ueba_scores", "table", "confidential", "", 300),
    ),
}
#: share of human principals per department
DEPARTMENT_WEIGHTS = {
    "support": 22, "sales": 14, "finance": 8, "hr": 5, "engineering": 18, "data_science": 9,
    "marketing": 8, "legal": 4, "it_admin": 6, "security": 6,
}
SHARED_RESOURCES = (
    _r("wiki.pages", "api", "internal", "", 5000),
    _r("company.directory-api", "api", "internal", "pii.contact", 300, True),
)

#: action weights (read, query, export, download, write, delete, share) per role
ACTIONS = ("read", "query", "export", "download", "write", "delete", "share")
ROLE_ACTIONS: dict[str, tuple[int, ...]] = {
    "agent": (80, 4, 0, 1, 12, 0, 3),
    "analyst": (25, 50, 12, 5, 4, 0, 4),
    "manager": (40, 25, 10, 8, 5, 1, 11),
    "engineer": (30, 35, 3, 6, 20, 4, 2),
    "admin": (45, 30, 2, 3, 15, 3, 2),
    "account_exec": (50, 15, 6, 10, 15, 0, 4),
    "accountant": (35, 35, 15, 4, 10, 0, 1),
    "partner": (55, 15, 5, 5, 18, 1, 1),
    "recruiter": (50, 10, 3, 8, 25, 2, 2),
    "designer": (40, 5, 2, 30, 15, 2, 6),
    "counsel": (60, 10, 4, 15, 8, 0, 3),
    "paralegal": (55, 10, 8, 15, 10, 1, 1),
}

#: service accounts: (id stem, department, user agent, resources, actions weights, events/day)
SERVICES: tuple[tuple[str, str, str, tuple[str, ...], tuple[int, ...], int], ...] = (
    ("etl", "data_science", "etl-runner/2.1", ("warehouse.orders", "warehouse.sessions", "app.events"),
     (10, 60, 0, 0, 30, 0, 0), 240),
    ("reporting", "finance", "report-builder/5.4", ("finance.ledger", "finance.invoices"),
     (20, 80, 0, 0, 0, 0, 0), 96),
    ("crm-sync", "sales", "crm-sync/1.8", ("crm.accounts", "crm.opportunities"),
     (40, 10, 0, 0, 50, 0, 0), 144),
    ("backup", "it_admin", "backup-agent/3.0", ("hr.employees", "iam.directory", "legal.contracts"),
     (0, 0, 100, 0, 0, 0, 0), 24),
    ("mailer", "marketing", "mailer/4.2", ("marketing.audiences",), (70, 30, 0, 0, 0, 0, 0), 120),
    ("siem-ingest", "security", "siem-ingest/7.1", ("siem.alerts", "logs-bucket"),
     (30, 0, 0, 0, 70, 0, 0), 288),
)

#: privileged roles an admin may hand out; ``role:`` permissions are never scoped to a resource
PRIVILEGED_ROLES = ("role:warehouse-admin", "role:iam-admin", "role:dba", "role:bucket-admin")

#: benign shifts (stream/simulate/shifts.py): how many of each per 500 principals x 21 days (night
#: on-call follows the rota instead)
BENIGN_RATE = {"travel": 4, "quarter_end_surge": 1, "new_table_adoption": 2, "new_joiner": 3,
               "laptop_refresh": 4, "ticketed_grant_first_access": 4, "large_usual_export": 4}
#: random worlds' benign kinds (shifts.py and twins.py): how many of each per 500 principals x 21 days,
#: before the world's own multiplier
RANDOM_BENIGN_RATE = {**BENIGN_RATE, "late_work": 4, "return_from_leave": 3, "device_refresh": 3,
                      "service_redeploy": 2, "misconfigured_job": 2, "reporting_week": 3, "support_backlog": 2,
                      "ticketed_cross_team_access": 3}
