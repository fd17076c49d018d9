# Copyright: retail.edge maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Compare a mosquitto password file with the wanted users and passwords, without rewriting it.

Reads {"user": "password", ...} as JSON on stdin and prints JSON with the users that are missing, whose
hash does not match, and that the file has but should not. Knows the two hash formats mosquitto_passwd
writes: $6$ (SHA-512 of password and salt, mosquitto 1.x) and $7$ (PBKDF2-HMAC-SHA512, mosquitto 2.x).
"""

import base64
import hashlib
import hmac
import json
import sys


def hash_matches(password, stored):
    parts = stored.split("$")
    try:
        if len(parts) == 4 and parts[1] == "6":
            salt, digest = base64.b64decode(parts[2]), base64.b64decode(parts[3])
            computed = hashlib.sha512(password.encode() + salt).digest()
        elif len(parts) == 5 and parts[1] == "7":
            iterations, salt, digest = int(parts[2]), base64.b64decode(parts[3]), base64.b64decode(parts[4])
            computed = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, len(digest))
        else:
            return False
    except ValueError:
        return False
    return hmac.compare_digest(computed, digest)


def main():
    wanted = json.load(sys.stdin)
    stored = {}
    try:
        with open(sys.argv[1]) as handle:
            for line in handle:
                user, sep, hashed = line.rstrip("\n").partition(":")
                if sep:
                    stored[user] = hashed
    except FileNotFoundError:
        pass
    missing = sorted(user for user in wanted if user not in stored)
    stale = sorted(user for user in wanted if user in stored and not hash_matches(wanted[user], stored[user]))
    extra = sorted(user for user in stored if user not in wanted)
    report = {"in_sync": not (missing or stale or extra), "missing": missing, "stale": stale, "extra": extra}
    json.dump(report, sys.stdout)


if __name__ == "__main__":
    main()
