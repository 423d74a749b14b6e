"""Two weeks of simulated CloudTrail background for the AWS account of OTRF's S3 exfiltration
(``SDAWS-200914011940``): the same account, bucket, instance role and instance, behaving as that
WAF proxy would before the breach. Made up here, by these rules, for the test only:

- the instance role (instance ``i-0317f6c6b66ae9c40``, its public address 35.174.154.220 as in the
  dataset's adversary view, an SDK agent) writes a WAF log object every 10 minutes and reads its
  rules file every hour, round the clock;
- ``pedro`` (the dataset's IAM user) reads the bucket's ``ring.txt`` and lists it from the S3 console
  on some working days.
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

ACCOUNT = "123456789123"
BUCKET = "mordors3stack-s3bucket-llp2yingx64a"
ROLE = "MordorNginxStack-BankingWAFRole-9S3E0UAE1MM0"
INSTANCE = "i-0317f6c6b66ae9c40"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/{ROLE}"
SDK_AGENT = "aws-sdk-go/1.34.22 (go1.15.2; linux; amd64)"
START = datetime(2020, 8, 31, tzinfo=UTC)
END = datetime(2020, 9, 14, 0, 40, tzinfo=UTC)  # the breach starts at 00:48

ROLE_IDENTITY = {
    "type": "AssumedRole", "principalId": f"AROA5FLZVX4OAMSW6BCRH:{INSTANCE}", "accountId": ACCOUNT,
    "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/{ROLE}/{INSTANCE}",
    "sessionContext": {"sessionIssuer": {"type": "Role", "principalId": "AROA5FLZVX4OAMSW6BCRH", "arn": ROLE_ARN,
                                         "accountId": ACCOUNT, "userName": ROLE},
                       "attributes": {"mfaAuthenticated": "false"}, "ec2RoleDelivery": "1.0"}}
PEDRO = {"type": "IAMUser", "principalId": "AIDAICAK2CN5MGHIIDIHA", "arn": f"arn:aws:iam::{ACCOUNT}:user/pedro",
         "accountId": ACCOUNT, "userName": "pedro"}


def _s3(when: datetime, identity: dict[str, Any], name: str, key: str | None, ip: str, agent: str,
        rng: random.Random) -> dict[str, Any]:
    params: dict[str, Any] = {"bucketName": BUCKET, "Host": f"{BUCKET}.s3.amazonaws.com"}
    if key is not None:
        params["key"] = key
    record = {"eventVersion": "1.07", "userIdentity": identity, "eventTime": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
              "eventSource": "s3.amazonaws.com", "eventName": name, "awsRegion": "us-east-1", "sourceIPAddress": ip,
              "userAgent": agent, "requestParameters": params, "eventID": str(uuid.UUID(int=rng.getrandbits(128))),
              "readOnly": name != "PutObject", "eventType": "AwsApiCall", "eventCategory": "Data",
              "recipientAccountId": ACCOUNT}
    if name == "GetObject":
        record["additionalEventData"] = {"bytesTransferredOut": float(rng.randrange(80, 4000))}
    return record


def background(seed: int = 7) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    records = []
    when = START
    while when < END:
        jitter = timedelta(seconds=rng.randrange(0, 50))
        key = f"waf-logs/{when:%Y/%m/%d/%H%M}.log.gz"
        records.append(_s3(when + jitter, ROLE_IDENTITY, "PutObject", key, "35.174.154.220", SDK_AGENT, rng))
        if when.minute == 0:
            records.append(_s3(when + jitter, ROLE_IDENTITY, "GetObject", "config/waf-rules.json", "35.174.154.220",
                               SDK_AGENT, rng))
        when += timedelta(minutes=10)
    for day in range(14):
        date = START + timedelta(days=day)
        if date.weekday() >= 5 or rng.random() < 0.3:
            continue
        at = date + timedelta(hours=14 + rng.random() * 4)  # pedro works from US Eastern time
        for name, key in (("ListObjects", None), ("GetObject", "ring.txt")):
            records.append(_s3(at, PEDRO, name, key, "1.2.3.4", "S3Console/0.4", rng))
            at += timedelta(seconds=30)
    return records
