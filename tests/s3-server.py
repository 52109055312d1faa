#!/usr/bin/env python3
# gst-uel: the S3 server of test-remote: moto in server mode on 127.0.0.1,
# with request authentication on, so that every request after the setup
# must carry a valid SigV4 signature of an IAM user's key.
# SPDX-License-Identifier: MIT
#
# s3-server.py BUCKET FILE...   uploads each FILE under its path relative
# to the first FILE's folder, prints "PORT KEY_ID SECRET" once the server
# listens, and serves until stdin closes.
import os
import sys

# the IAM setup below runs before authentication starts: 3 requests
os.environ["INITIAL_NO_AUTH_ACTION_COUNT"] = "3"
os.environ.setdefault("AWS_ACCESS_KEY_ID", "setup")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "setup")

import boto3  # noqa: E402
from moto.server import ThreadedMotoServer  # noqa: E402

bucket, files = sys.argv[1], sys.argv[2:]
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
port = server._server.server_port
endpoint = "http://127.0.0.1:%d" % port
region = "us-east-1"

iam = boto3.client("iam", endpoint_url=endpoint, region_name=region)
iam.create_user(UserName="reader")
key = iam.create_access_key(UserName="reader")["AccessKey"]
iam.put_user_policy(
    UserName="reader", PolicyName="s3",
    PolicyDocument='{"Version": "2012-10-17", "Statement": [{"Effect": '
    '"Allow", "Action": "s3:*", "Resource": "*"}]}')

s3 = boto3.client("s3", endpoint_url=endpoint, region_name=region,
                  aws_access_key_id=key["AccessKeyId"],
                  aws_secret_access_key=key["SecretAccessKey"])
s3.create_bucket(Bucket=bucket)
base = os.path.dirname(files[0])
for f in files:
    with open(f, "rb") as fh:
        s3.put_object(Bucket=bucket, Key=os.path.relpath(f, base),
                      Body=fh.read())

print(port, key["AccessKeyId"], key["SecretAccessKey"], flush=True)
sys.stdin.read()
server.stop()
