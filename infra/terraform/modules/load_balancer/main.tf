# The service's only public entry: a managed Application Load Balancer (it scales itself; the
# self-hosted single nginx balancer a previous team used capped them at 1,750 req/s), HTTPS only,
# forwarding to the instances' nginx, which caches and keeps connections open to gunicorn.

resource "aws_security_group" "balancer" {
  name        = "${var.name}-alb"
  description = "Public HTTPS entry of ${var.name}"
  vpc_id      = var.vpc_id
  tags        = { Name = "${var.name}-alb" }
}

resource "aws_vpc_security_group_ingress_rule" "public" {
  # Port 80 only answers with a redirect to HTTPS.
  for_each = { for pair in setproduct(var.ingress_cidrs, [80, 443]) : "${pair[0]}:${pair[1]}" => pair }

  security_group_id = aws_security_group.balancer.id
  description       = "HTTP(S) from clients"
  cidr_ipv4         = each.value[0]
  from_port         = each.value[1]
  to_port           = each.value[1]
  ip_protocol       = "tcp"
}

resource "aws_vpc_security_group_egress_rule" "to_instances" {
  security_group_id = aws_security_group.balancer.id
  description       = "To the instances' nginx"
  cidr_ipv4         = var.vpc_cidr_block
  from_port         = var.instance_port
  to_port           = var.instance_port
  ip_protocol       = "tcp"
}

resource "aws_lb" "this" {
  #checkov:skip=CKV2_AWS_76:The web ACL has KnownBadInputs (the Log4j rule); AnonymousIpList, which the check also wants, would block API clients and load generators that run on cloud hosting.
  name                       = var.name
  load_balancer_type         = "application"
  internal                   = false
  subnets                    = var.public_subnet_ids
  security_groups            = [aws_security_group.balancer.id]
  idle_timeout               = var.idle_timeout_seconds
  drop_invalid_header_fields = true
  enable_deletion_protection = var.deletion_protection

  #checkov:skip=CKV_AWS_91:Access logs go to the operator's existing log bucket (variable access_logs_bucket); this module creates no bucket of its own.
  dynamic "access_logs" {
    for_each = var.access_logs_bucket == null ? [] : [var.access_logs_bucket]
    content {
      bucket  = access_logs.value
      prefix  = var.name
      enabled = true
    }
  }
}

resource "aws_lb_target_group" "instances" {
  name                 = var.name
  vpc_id               = var.vpc_id
  port                 = var.instance_port
  protocol             = "HTTP"
  target_type          = "instance"
  deregistration_delay = var.deregistration_delay_seconds

  # /readyz answers 200 only when the instance's gunicorn reaches its database through nginx.
  health_check {
    path                = "/readyz"
    matcher             = "200"
    interval            = 10
    timeout             = 5
    healthy_threshold   = 2
    unhealthy_threshold = 3
  }
}

resource "aws_lb_listener" "https" {
  load_balancer_arn = aws_lb.this.arn
  port              = 443
  protocol          = "HTTPS"
  ssl_policy        = "ELBSecurityPolicy-TLS13-1-2-2021-06"
  certificate_arn   = var.certificate_arn

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.instances.arn
  }
}

# /metrics (Prometheus text: per-route counts, pool and process figures) is for monitoring
# inside the VPC, not for the internet; the instances still answer it.
resource "aws_lb_listener_rule" "private_routes" {
  listener_arn = aws_lb_listener.https.arn
  priority     = 1

  condition {
    path_pattern {
      values = var.private_paths
    }
  }

  action {
    type = "fixed-response"
    fixed_response {
      content_type = "application/json"
      status_code  = "404"
      message_body = jsonencode({ message = "not found" })
    }
  }
}

resource "aws_lb_listener" "http_redirect" {
  load_balancer_arn = aws_lb.this.arn
  port              = 80
  protocol          = "HTTP"

  default_action {
    type = "redirect"
    redirect {
      port        = "443"
      protocol    = "HTTPS"
      status_code = "HTTP_301"
    }
  }
}

# AWS's managed rules for known-bad input, plus a per-client rate limit so one client cannot
# take the fleet's whole capacity.
resource "aws_wafv2_web_acl" "this" {
  name  = var.name
  scope = "REGIONAL"

  default_action {
    allow {}
  }

  rule {
    name     = "known-bad-inputs"
    priority = 1
    override_action {
      none {}
    }
    statement {
      managed_rule_group_statement {
        vendor_name = "AWS"
        name        = "AWSManagedRulesKnownBadInputsRuleSet"
      }
    }
    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "${var.name}-known-bad-inputs"
      sampled_requests_enabled   = true
    }
  }

  rule {
    name     = "per-client-rate"
    priority = 2
    action {
      block {}
    }
    statement {
      rate_based_statement {
        limit              = var.requests_per_client_per_5min
        aggregate_key_type = "IP"
      }
    }
    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "${var.name}-per-client-rate"
      sampled_requests_enabled   = true
    }
  }

  visibility_config {
    cloudwatch_metrics_enabled = true
    metric_name                = var.name
    sampled_requests_enabled   = true
  }
}

resource "aws_wafv2_web_acl_association" "this" {
  resource_arn = aws_lb.this.arn
  web_acl_arn  = aws_wafv2_web_acl.this.arn
}

resource "aws_cloudwatch_log_group" "waf" {
  name              = "aws-waf-logs-${var.name}" # WAF only logs to groups with this prefix
  retention_in_days = var.waf_log_retention_days
  kms_key_id        = var.log_kms_key_arn
}

resource "aws_wafv2_web_acl_logging_configuration" "this" {
  resource_arn            = aws_wafv2_web_acl.this.arn
  log_destination_configs = [aws_cloudwatch_log_group.waf.arn]
}
