"""What two services agree on: the chat mailbox, survey links and pending surveys, SMS
opt-out, agent tokens. Built on the runtime spine (libs.common), never on a service."""
