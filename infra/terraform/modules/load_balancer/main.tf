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

  access_logs {
    bucket  = var.access_logs_bucket
    prefix  = var.name
    enabled = true
  }
}

resource "aws_lb_target_group" "instances" {
  name                 = var.name
  vpc_id               = var.vpc_id
  port                 = var.instance_port
  protocol             = "HTTP"
  target_type          = "instance"
  deregistration_delay = var.deregistration_delay_seconds

  # /healthz answers 200 when the instance's nginx and gunicorn answer, whatever the database
  # does: a database failover or upgrade must not take every instance out of the balancer (and,
  # through the Auto Scaling group's ELB health check, recycle them all). Whether the instance
  # reaches its database is the deploy gate's question (the boot script: /readyz and a read).
  health_check {
    path                = var.health_check_path
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
# inside the VPC, not for the internet. The instances serve it only on their own metrics port,
# which this balancer never forwards to, and their public port answers 404 for every spelling
# of it; this rule (exact paths) is defence in depth and keeps those requests off the fleet.
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

# Only the requests a rule blocked are logged: logging every request costs about as much as the
# fleet at a sustained 1,000 req/s, and the balancer's access logs (S3) already record them all.
resource "aws_wafv2_web_acl_logging_configuration" "this" {
  resource_arn            = aws_wafv2_web_acl.this.arn
  log_destination_configs = [aws_cloudwatch_log_group.waf.arn]

  logging_filter {
    default_behavior = "DROP"
    filter {
      behavior    = "KEEP"
      requirement = "MEETS_ANY"
      condition {
        action_condition {
          action = "BLOCK"
        }
      }
    }
  }
}

# Alarms to the environment's topic. The first two also stop and roll back an instance refresh
# (service_fleet: alarm_specification), so a release that answers errors or slowly goes no
# further than its first checkpoint.
resource "aws_cloudwatch_metric_alarm" "errors" {
  alarm_name          = "${var.name}-5xx-rate"
  alarm_description   = "More than ${var.alarms.error_rate_percent}% of the requests answered 5xx (by the instances or by the balancer)"
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.alarms.error_rate_percent
  evaluation_periods  = 3
  datapoints_to_alarm = 2
  treat_missing_data  = "notBreaching"
  alarm_actions       = [var.alarm_topic_arn]
  ok_actions          = [var.alarm_topic_arn]

  metric_query {
    id          = "rate"
    label       = "5xx per 100 requests"
    expression  = "100 * (FILL(target, 0) + FILL(balancer, 0)) / IF(requests > 0, requests, 1)"
    return_data = true
  }

  dynamic "metric_query" {
    for_each = {
      target   = "HTTPCode_Target_5XX_Count"
      balancer = "HTTPCode_ELB_5XX_Count"
      requests = "RequestCount"
    }
    content {
      id = metric_query.key
      metric {
        namespace   = "AWS/ApplicationELB"
        metric_name = metric_query.value
        dimensions  = { LoadBalancer = aws_lb.this.arn_suffix }
        period      = 60
        stat        = "Sum"
      }
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "latency" {
  alarm_name          = "${var.name}-target-p99"
  alarm_description   = "The instances' p99 response time above ${var.alarms.p99_seconds} s"
  namespace           = "AWS/ApplicationELB"
  metric_name         = "TargetResponseTime"
  dimensions          = { LoadBalancer = aws_lb.this.arn_suffix, TargetGroup = aws_lb_target_group.instances.arn_suffix }
  extended_statistic  = "p99"
  period              = 60
  evaluation_periods  = 5
  datapoints_to_alarm = 3
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.alarms.p99_seconds
  treat_missing_data  = "notBreaching"
  alarm_actions       = [var.alarm_topic_arn]
  ok_actions          = [var.alarm_topic_arn]
}

resource "aws_cloudwatch_metric_alarm" "unhealthy" {
  alarm_name          = "${var.name}-unhealthy-hosts"
  alarm_description   = "An instance has failed the balancer's health check (/healthz) for 5 minutes"
  namespace           = "AWS/ApplicationELB"
  metric_name         = "UnHealthyHostCount"
  dimensions          = { LoadBalancer = aws_lb.this.arn_suffix, TargetGroup = aws_lb_target_group.instances.arn_suffix }
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 5
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = [var.alarm_topic_arn]
  ok_actions          = [var.alarm_topic_arn]
}
