# A customer-managed KMS key with yearly rotation. Its policy is AWS's default (the account
# delegates the key's use to IAM policies), plus the services that must use it directly.

data "aws_caller_identity" "current" {}

data "aws_iam_policy_document" "this" {
  #checkov:skip=CKV_AWS_109:AWS's default key policy: in a key policy "*" is this key, and the account delegates its use to IAM policies.
  #checkov:skip=CKV_AWS_111:AWS's default key policy: in a key policy "*" is this key, and the account delegates its use to IAM policies.
  #checkov:skip=CKV_AWS_356:AWS's default key policy: in a key policy "*" is this key, and the account delegates its use to IAM policies.
  statement {
    sid       = "AccountAdministersTheKeyThroughIAM"
    actions   = ["kms:*"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["arn:aws:iam::${data.aws_caller_identity.current.account_id}:root"]
    }
  }

  dynamic "statement" {
    for_each = length(var.service_principals) > 0 ? [var.service_principals] : []
    content {
      sid       = "ServicesEncryptWithIt"
      actions   = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
      resources = ["*"]
      principals {
        type        = "Service"
        identifiers = statement.value
      }
    }
  }
}

resource "aws_kms_key" "this" {
  description         = var.description
  enable_key_rotation = true
  policy              = data.aws_iam_policy_document.this.json
}

resource "aws_kms_alias" "this" {
  name          = "alias/${var.alias}"
  target_key_id = aws_kms_key.this.key_id
}
