"""The platform's existing network, in the local AWS API (moto server), for the tests.

Resets the moto server, then creates what provision.yml expects to find: a VPC with
two private subnets in two availability zones. Prints the inputs provision.yml takes
as JSON. Usage: python scripts/moto_platform.py [REGION]   (endpoint: AWS_ENDPOINT_URL)
"""

import json
import os
import sys
import urllib.request

import boto3

CIDR = "10.20.0.0/16"
SUBNETS = {"a": "10.20.1.0/24", "b": "10.20.2.0/24"}


def reset(endpoint):
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"), timeout=10)


def create(region):
    ec2 = boto3.client("ec2", region_name=region)
    vpc = ec2.create_vpc(CidrBlock=CIDR)["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=cidr, AvailabilityZone=region + zone)["Subnet"]["SubnetId"]
        for zone, cidr in SUBNETS.items()
    ]
    # moto ships a catalogue of public AMIs; any one stands in for a Debian 12 image.
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    return {"dask_aws_subnet_ids": subnets, "dask_aws_image_id": image, "vpc_id": vpc}


if __name__ == "__main__":
    endpoint = os.environ["AWS_ENDPOINT_URL"]
    if not endpoint.startswith("http://127.0.0.1:"):
        sys.exit(f"refusing to reset {endpoint}: the tests only talk to a moto server on loopback")
    reset(endpoint)
    print(json.dumps(create(sys.argv[1] if len(sys.argv) > 1 else "us-west-2")))
