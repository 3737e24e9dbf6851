"""A cell's snapshot store: a private S3 bucket served through CloudFront.

A hot stream in the snapshot tier is written once a second as one JSON document with
Cache-Control and ETag (DESIGN.md, "Hot streams"); viewers poll the CDN, not the gateways.
The bucket is reachable only by this cell's gateways (write) and by its distribution (read,
through origin access control); all its objects expire after a day.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from iac.tags import Tags

# AWS managed response headers policy "Managed-SimpleCORS": pages on another origin may
# fetch the JSON.
SIMPLE_CORS_POLICY = "60669652-455b-4ae9-85a4-c4c02393f86c"
ORIGIN = "snapshots"


def bucket_prefix(stack: str, region: str) -> str:
    """S3 allows lowercase letters, digits and '-' in names, and a prefix of 37 characters
    (AWS appends a unique suffix)."""
    return re.sub(r"[^a-z0-9-]", "-", f"chorus-{stack}-{region}-".lower())[:37]


@dataclass(frozen=True)
class SnapshotsArgs:
    """``max_ttl_s`` caps how stale an edge copy may be whatever the origin says."""

    stack: str
    region: str
    tags: Tags
    max_ttl_s: int = 5


class Snapshots(pulumi.ComponentResource):
    """Bucket, its guards (public access block, encryption, TLS-only policy, expiry), and
    the CloudFront distribution in front of it."""

    bucket_name: pulumi.Output[str]
    bucket_arn: pulumi.Output[str]
    url: pulumi.Output[str]

    def __init__(self, name: str, args: SnapshotsArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("chorus:iac:Snapshots", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = args.tags.of("snapshots")
        bucket = aws.s3.Bucket(
            f"{name}-bucket", bucket_prefix=bucket_prefix(args.stack, args.region),
            # Snapshots are derived data, rewritten every second: removing a region may
            # delete them.
            force_destroy=True, tags=tags, opts=child)
        ownership = aws.s3.BucketOwnershipControls(
            f"{name}-ownership", bucket=bucket.id,
            rule=aws.s3.BucketOwnershipControlsRuleArgs(object_ownership="BucketOwnerEnforced"),
            opts=child)
        block = aws.s3.BucketPublicAccessBlock(
            f"{name}-public-access", bucket=bucket.id, block_public_acls=True,
            block_public_policy=True, ignore_public_acls=True, restrict_public_buckets=True,
            opts=child)
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-encryption", bucket=bucket.id,
            rules=[aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                apply_server_side_encryption_by_default=(
                    aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
                        sse_algorithm="AES256")))],
            opts=child)
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-expiry", bucket=bucket.id,
            rules=[aws.s3.BucketLifecycleConfigurationRuleArgs(
                id="expire-snapshots", status="Enabled",
                filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=""),
                expiration=aws.s3.BucketLifecycleConfigurationRuleExpirationArgs(days=1))],
            opts=child)
        oac = aws.cloudfront.OriginAccessControl(
            f"{name}-oac", origin_access_control_origin_type="s3", signing_behavior="always",
            signing_protocol="sigv4", description=f"Chorus {args.region} snapshots",
            opts=child)
        # The origin's Cache-Control (max-age=1) decides, within [0, max_ttl_s].
        cache = aws.cloudfront.CachePolicy(
            f"{name}-cache", min_ttl=0, default_ttl=1, max_ttl=args.max_ttl_s,
            comment="Chorus snapshots: honour the origin's max-age",
            parameters_in_cache_key_and_forwarded_to_origin={
                "cookies_config": {"cookie_behavior": "none"},
                "headers_config": {"header_behavior": "none"},
                "query_strings_config": {"query_string_behavior": "none"},
                "enable_accept_encoding_gzip": True,
                "enable_accept_encoding_brotli": True,
            }, opts=child)
        cdn = aws.cloudfront.Distribution(
            f"{name}-cdn", enabled=True, is_ipv6_enabled=True,
            comment=f"Chorus {args.region} snapshots",
            origins=[aws.cloudfront.DistributionOriginArgs(
                origin_id=ORIGIN, domain_name=bucket.bucket_regional_domain_name,
                origin_access_control_id=oac.id)],
            default_cache_behavior=aws.cloudfront.DistributionDefaultCacheBehaviorArgs(
                target_origin_id=ORIGIN, viewer_protocol_policy="https-only",
                allowed_methods=["GET", "HEAD", "OPTIONS"], cached_methods=["GET", "HEAD"],
                compress=True, cache_policy_id=cache.id,
                response_headers_policy_id=SIMPLE_CORS_POLICY),
            restrictions=aws.cloudfront.DistributionRestrictionsArgs(
                geo_restriction=aws.cloudfront.DistributionRestrictionsGeoRestrictionArgs(
                    restriction_type="none")),
            # The *.cloudfront.net name: clients take snapshot URLs from the gateways.
            viewer_certificate=aws.cloudfront.DistributionViewerCertificateArgs(
                cloudfront_default_certificate=True),
            tags=tags, opts=child)
        aws.s3.BucketPolicy(
            f"{name}-policy", bucket=bucket.id,
            policy=pulumi.Output.json_dumps({
                "Version": "2012-10-17",
                "Statement": [
                    {"Sid": "CloudFrontReads", "Effect": "Allow",
                     "Principal": {"Service": "cloudfront.amazonaws.com"},
                     "Action": "s3:GetObject",
                     "Resource": pulumi.Output.concat(bucket.arn, "/*"),
                     "Condition": {"StringEquals": {"AWS:SourceArn": cdn.arn}}},
                    {"Sid": "TlsOnly", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
                     "Resource": [bucket.arn, pulumi.Output.concat(bucket.arn, "/*")],
                     "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
                ],
            }),
            # S3 rejects a bucket policy change while the public access block or the
            # ownership controls are still being applied.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[block, ownership]))
        self.bucket_name = bucket.bucket
        self.bucket_arn = bucket.arn
        self.url = pulumi.Output.concat("https://", cdn.domain_name)
        self.register_outputs({"bucket": bucket.bucket, "url": self.url})
