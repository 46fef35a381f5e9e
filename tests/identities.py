"""Every userIdentity type CloudTrail documents, with the caller key and the name the package's
rules give each (cloudtrail_fields.caller_id and caller_name): one table for every rule's tests.
"""

ASSUMED_ROLE = {
    "type": "AssumedRole",
    "principalId": "AROAIOSFODNN7EXAMPLE:etl-nightly",
    "arn": "arn:aws:sts::123456789012:assumed-role/DataPipeline/etl-nightly",
    "accountId": "123456789012",
    "accessKeyId": "ASIAIOSFODNN7EXAMPLE",
    "sessionContext": {
        "sessionIssuer": {
            "type": "Role",
            "principalId": "AROAIOSFODNN7EXAMPLE",
            "arn": "arn:aws:iam::123456789012:role/DataPipeline",
            "accountId": "123456789012",
            "userName": "DataPipeline",
        },
        "attributes": {"creationDate": "2026-11-20T08:02:11Z", "mfaAuthenticated": "false"},
    },
}

OWNER = "123456789012"
IDENTITY_CENTER = {
    "type": "IdentityCenterUser",
    "accountId": OWNER,
    "onBehalfOf": {
        "userId": "94482488-3041-7026-18f3-EXAMPLE4a71e",
        "identityStoreArn": f"arn:aws:identitystore::{OWNER}:identitystore/d-9067EXAMPLE",
    },
    "credentialId": "EXAMPLEVHULjJdTUdPJfofVa1sufHDoj7aYcOYcxFVllWR_Whr1fEXAMPLE",
}
# userIdentity type -> (identity, caller key, the caller as the titles name it)
CALLERS = {
    "IAMUser": (
        {
            "type": "IAMUser",
            "principalId": "AIDAJQABLZS4A3QDU576Q",
            "arn": f"arn:aws:iam::{OWNER}:user/ci-deployer",
            "accountId": OWNER,
            "accessKeyId": "AKIAIOSFODNN7EXAMPLE",
            "userName": "ci-deployer",
        },
        f"{OWNER}:AIDAJQABLZS4A3QDU576Q",
        "ci-deployer",
    ),
    "AssumedRole": (
        ASSUMED_ROLE,
        f"{OWNER}:AROAIOSFODNN7EXAMPLE:etl-nightly",
        "DataPipeline (session etl-nightly)",
    ),
    "AssumedRole, a session that sorts before its role": (
        {
            **ASSUMED_ROLE,
            "principalId": "AROAIOSFODNN7EXAMPLE:Admin-1",
            "arn": f"arn:aws:sts::{OWNER}:assumed-role/DataPipeline/Admin-1",
        },
        f"{OWNER}:AROAIOSFODNN7EXAMPLE:Admin-1",
        "DataPipeline (session Admin-1)",
    ),
    "FederatedUser": (
        {
            "type": "FederatedUser",
            "principalId": f"{OWNER}:jdoe",
            "arn": f"arn:aws:sts::{OWNER}:federated-user/jdoe",
            "accountId": OWNER,
            "accessKeyId": "ASIAIOSFODNN7EXAMPLF",
            "sessionContext": {
                "sessionIssuer": {
                    "type": "IAMUser",
                    "principalId": "AIDAEXAMPLEFEDERATOR",
                    "arn": f"arn:aws:iam::{OWNER}:user/federator",
                    "accountId": OWNER,
                    "userName": "federator",
                }
            },
        },
        f"{OWNER}:{OWNER}:jdoe",
        "federator",
    ),
    "Root": (
        {
            "type": "Root",
            "principalId": OWNER,
            "arn": f"arn:aws:iam::{OWNER}:root",
            "accountId": OWNER,
            "accessKeyId": "ASIAIOSFODNN7EXAMPLR",
        },
        f"{OWNER}:{OWNER}",
        f"root of account {OWNER}",
    ),
    "AWSAccount (cross-account, redacted)": (
        {"type": "AWSAccount", "principalId": "AKIAI44QH8DHBEXAMPLE", "accountId": "777788889999"},
        "777788889999:AKIAI44QH8DHBEXAMPLE",
        "AKIAI44QH8DHBEXAMPLE in account 777788889999",
    ),
    "AWSService": (
        {"type": "AWSService", "invokedBy": "backup.amazonaws.com"},
        "<unknown>:service:backup.amazonaws.com",
        "backup.amazonaws.com",
    ),
    "IdentityCenterUser": (
        IDENTITY_CENTER,
        f"{OWNER}:identitycenter:d-9067EXAMPLE:94482488-3041-7026-18f3-EXAMPLE4a71e",
        "94482488-3041-7026-18f3-EXAMPLE4a71e",
    ),
    "Unknown": (
        {"type": "Unknown", "principalId": "", "accountId": OWNER, "userName": "jdoe"},
        f"{OWNER}:user:jdoe",
        "jdoe",
    ),
    "Unknown, a bare access key": (
        {"type": "Unknown", "accountId": OWNER, "accessKeyId": "ASIAIOSFODNN7EXAMPLK"},
        f"{OWNER}:key:ASIAIOSFODNN7EXAMPLK",
        "<unknown>",
    ),
    "no userIdentity": (None, "<unknown>:<unknown>", "<unknown>"),
}
