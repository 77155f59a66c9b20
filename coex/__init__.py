"""coex: WhatsApp Business Coexistence webhooks into ClickHouse."""
